"""What every process of subledger shares: settings, the topic catalog, embedded services."""
