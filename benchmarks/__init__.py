"""simsub's benchmark suite: ratios measured in one process run, so they hold on a noisy machine."""
