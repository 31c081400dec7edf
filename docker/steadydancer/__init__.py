"""Programs that run inside the SteadyDancer image: at build time, at boot and for checks."""
