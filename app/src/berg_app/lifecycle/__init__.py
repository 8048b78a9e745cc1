"""``berg demo``: the whole lifecycle on the local stack, from history to a promoted challenger."""
