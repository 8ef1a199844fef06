"""CTI: number normalisation, directory look-up and screen-pop assembly."""
