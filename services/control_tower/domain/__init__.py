"""The control tower's pure rules: which references tie an event to an order, the state each
event moved, and the causal order of a timeline."""
