"""Expert upcycling: grow a trained E-expert MoE to mE experts and measure the gap it closes."""
