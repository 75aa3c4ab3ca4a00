"""Development tools: local stand-ins for Azure and Amazon, the local runner, benchmarks.

Nothing here is deployed (.funcignore). The app reaches these only through its settings."""
