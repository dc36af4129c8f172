"""CoMem (paper 6): a memory model that summarizes an agent's history k steps behind, concurrently with the agent."""
