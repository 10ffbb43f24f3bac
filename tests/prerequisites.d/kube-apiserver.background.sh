#!/usr/bin/env bash
# Kubernetes API server v1.20 (+ etcd) for the Kubernetes tests: built once per machine into the cache.
exec "$(dirname "$0")/../kube-apiserver/build.sh"
