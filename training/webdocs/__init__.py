"""Students of the web-document taxonomy: models that learn the teacher LLM's labels cheaply."""
