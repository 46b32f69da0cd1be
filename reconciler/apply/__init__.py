"""The executor: carries out a Plan against Lightsail, journal before every step."""
