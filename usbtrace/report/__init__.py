"""Reports: tables, views of decoded captures and summaries, for terminals, pipes and files."""
