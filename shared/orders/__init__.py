"""The order: its domain types, its stored record, its pseudonymous reference, the queue
messages that move it between stages, the repository (the only door to the orders
container) and the proceeds semantics every context reads."""
