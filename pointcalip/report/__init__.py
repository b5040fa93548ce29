"""What a run leaves behind: accuracies (metrics), results.json and run folders (results),
and PNG figures (plots)."""
