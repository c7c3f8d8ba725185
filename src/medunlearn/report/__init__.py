"""A study's report: its result files, and the tables and figures of the analyses that apply."""
