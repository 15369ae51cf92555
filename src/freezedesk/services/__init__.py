"""Use cases. Each function opens one unit of work: the change, its audit and its events commit together."""
