"""Tasks, termination functions and (later) the penalized model MDP."""
