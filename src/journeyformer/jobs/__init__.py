"""Jobs that run the layers below end to end: train (and refit), beside pipelines and the CLI."""
