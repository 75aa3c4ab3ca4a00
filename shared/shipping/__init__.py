"""Shipping: one label per ready order from the carrier its rules choose (karrio carriers or
Amazon Buy Shipping), the sealed label, and the shipment confirmed to Amazon."""
