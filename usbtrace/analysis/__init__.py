"""Analysis: requests, phases, parameter-streaming overlap and per-capture summaries."""
