"""edgekit.toolkit: data, training, reports and the command line."""
