"""The operator: kopf handlers (thin) over a reconcile that fetches, plans and acts."""
