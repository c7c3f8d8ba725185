"""A study's jobs and their cached work: the set-up every command shares, the cached original,
Retrain and method runs, the banks of models, the rows and the plan of jobs that computes them."""
