"""The fulfilment app's own package: all logic lives here, testable without the Functions host."""
