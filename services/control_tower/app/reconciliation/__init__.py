"""Reconciliation: scheduled checks that find drift between services and correct it through the
owners (services.control_tower.domain.reconciliation for the rules; `checks` for the checks;
`reconciler` runs them; `schedule` runs them on their intervals with a lease per check)."""
