"""Retention: learning when each order was delivered and purging buyer data, labels, keys and
invoice copies when their time is up."""
