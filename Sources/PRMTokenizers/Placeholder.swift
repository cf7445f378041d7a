// PRMTokenizers: placeholder until the module lands.
