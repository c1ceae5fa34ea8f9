"""Services: organisations working with children and each involvement with a child."""
