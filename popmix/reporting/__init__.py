"""What a search leaves behind: the comparison table, summary.json, the best schedule, progress."""
