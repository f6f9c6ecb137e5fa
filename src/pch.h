// Precompiled once per build: the heavy LibTorch headers every core file uses.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/serialize.h>
#include <torch/types.h>
#include <torch/utils.h>
