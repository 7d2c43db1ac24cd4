"""The robustness experiment: poisons and cloaks after a scraper's countermeasure, and its report."""
