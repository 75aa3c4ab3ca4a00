"""The Functions host's entry point: it only registers the blueprints in `functions/`."""

import azure.functions as func

from functions import ingest, invoicing, notifications, privacy, retention, shipping

app = func.FunctionApp()
for blueprint in (ingest.bp, shipping.bp, invoicing.bp, retention.bp, privacy.bp, notifications.bp):
    app.register_functions(blueprint)
