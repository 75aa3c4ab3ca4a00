"""Tax invoices: content (`model`), numbering (`numbering`), rendering (`render`), delivery
through the Feeds API (`feeds`) and the legal archive (`archive`). The service that ties them
to an order is `shared.invoices.service.InvoicingService`; docs/invoices.md explains the design."""
