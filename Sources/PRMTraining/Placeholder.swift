// PRMTraining: placeholder until the module lands.
