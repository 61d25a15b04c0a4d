"""DDP-βVAE networks (:mod:`.networks`) and DP training of the class models (:mod:`.training`)."""
