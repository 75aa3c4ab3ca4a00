"""The operators' command line: `python -m ops --help`."""
