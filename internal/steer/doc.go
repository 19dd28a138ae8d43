// Package steer holds the changes a user makes to steer an UpgradeBatch:
// pause, resume, promote and cancel (merge patches of spec, never status)
// and retry (a new batch of the failed devices). The kubectl plugin's verbs
// and the dashboard's buttons call the same functions, so both make the
// same requests as the user, and the API server's RBAC decides for both.
package steer
