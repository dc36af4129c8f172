"""Expert upcycling (paper 8): corpus, utility-based expert selection and the upcycling report."""
