# Hostile-input sweep (issue 19): bad flags, inputs, outputs and run directories for
# train_gpt and the data tools; 757 cases, about 1 minute on 2 cores.
# See dev/hostile/README.md.
TESTS += "bash dev/hostile/sweep.sh"
