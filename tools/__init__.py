"""The checks DVC does not ship, behind the Makefile's verbs: `make repro-check` and `make report`."""
