"""The `subledger` command line."""
