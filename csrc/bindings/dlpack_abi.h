// The DLPack C ABI (https://dmlc.github.io/dlpack), version 0.8 layout: the
// few structs a consumer and producer of tensors need. Declared here so the
// bindings (the CUDA module, and CPU ops that take dtypes numpy lacks, such
// as bfloat16 logits) depend on no framework.
#pragma once

#include <cstdint>

extern "C" {
enum RkDLDeviceType : int32_t { kRkDLCPU = 1, kRkDLCUDA = 2 };
enum RkDLDataTypeCode : uint8_t { kRkDLInt = 0, kRkDLUInt = 1, kRkDLFloat = 2, kRkDLBfloat = 4 };

struct RkDLDevice {
  int32_t device_type;
  int32_t device_id;
};
struct RkDLDataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};
struct RkDLTensor {
  void* data;
  RkDLDevice device;
  int32_t ndim;
  RkDLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; NULL means C-contiguous
  uint64_t byte_offset;
};
struct RkDLManagedTensor {
  RkDLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(RkDLManagedTensor* self);
};
}
