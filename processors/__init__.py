"""Stream processing: the pure fold (`processors.core`) and the shell that runs it."""
