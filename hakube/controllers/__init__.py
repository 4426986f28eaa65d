"""Leader-elected, level-triggered controllers and the controller-manager that runs them."""
