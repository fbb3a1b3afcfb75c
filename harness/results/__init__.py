"""How results are stored, compared and gated: schema, store, gate, history, machine."""
