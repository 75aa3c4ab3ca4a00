"""One Blueprint per stage. Each function body decodes its trigger, calls one service in
`shared/`, hands the next step to its output queue, and records telemetry."""
