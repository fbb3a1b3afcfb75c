"""What is tested: the model zoo, its data sets, and a user's own model and rows."""
