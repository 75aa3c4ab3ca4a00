"""The composition root: settings read once, every client and service wired, and the `Runtime`
the functions ask for. Nothing else in `shared/` imports this package."""
