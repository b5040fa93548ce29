"""Point-cloud datasets: ModelNet40/10, ScanObjectNN, user files, few-shot splits."""
