// PRMModel: placeholder until the module lands.
