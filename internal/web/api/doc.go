// Package api is padlock's REST API under /api/v1: JSON in and out, bearer
// tokens with roles, errors as {"error":{"code","message","field"}}, and the
// OpenAPI document at /api/v1/openapi.json. Handlers are thin: every rule,
// including which customer may see what, lives in the lock service, so the
// web areas built on the same service behave the same. It must not import
// the store or any enforcement driver.
package api
