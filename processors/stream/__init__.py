"""The Faust shell around the pure folds: topics in, state in tables, topics out."""
