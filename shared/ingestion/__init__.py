"""Orders in from Amazon: the timer poll and ORDER_CHANGE notifications, the SP-API gateway
and its rate budget, and the mapping of Amazon's order model onto `shared.orders`."""
