"""The testing kit: Hypothesis strategies, contract suites and fault-injecting sandboxes."""
