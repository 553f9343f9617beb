/*
 * A stand-in for libedgetpu.so.1 (the Coral Edge TPU runtime) for machines
 * without a Coral. It is a real TFLite external delegate: the runtime's
 * load_delegate() dlopens it and calls tflite_plugin_create_delegate(), the
 * interpreter calls its Prepare(), which claims the model's
 * "edgetpu-custom-op" node through TfLiteContext, and invoke() then runs the
 * delegate kernel. What the kernel computes is the fake part: instead of a
 * TPU it looks the input up in a reply table the test wrote (input bytes ->
 * output bytes, made by running the CPU twin of the model on the same
 * input), or writes a fixed known answer.
 *
 * The structs below declare the TFLite C ABI as tensorflow/lite/core/c/common.h
 * defines it (the "semi-ABI stable" prefixes of TfLiteContext and TfLiteNode,
 * the whole TfLiteTensor, TfLiteRegistration and TfLiteDelegate). A real
 * libedgetpu built against another runtime disagrees with the runtime on
 * exactly these layouts, which is how it crashes.
 *
 * Environment (read when the delegate is created):
 *   EDGECAM_FAKE_EDGETPU         ok (default) | nodevice | crash | crash-invoke |
 *                                prepare-error | fail-invoke
 *   EDGECAM_FAKE_EDGETPU_REPLIES reply table: u32 in_bytes, u32 out_bytes,
 *                                u32 count, then count x (input, output); an
 *                                input of zeros (edgecam's probe) gets zeros
 *   EDGECAM_FAKE_EDGETPU_CLASS   without a table: the output is 0 except
 *                                255 at this index (default 0)
 *   EDGECAM_FAKE_EDGETPU_FAIL_AFTER  fail-invoke: invokes that succeed first
 *   EDGECAM_FAKE_EDGETPU_LOG     append one line per event to this file
 */
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { kTfLiteOk = 0, kTfLiteError = 1, kTfLiteDelegateError = 2 } TfLiteStatus;

typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;

typedef struct {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef struct {
  int type;
  void *params;
} TfLiteQuantization;

struct TfLiteDelegate;
struct TfLiteContext;
struct TfLiteRegistration;

typedef struct TfLiteTensor {
  int type;
  void *data;
  TfLiteIntArray *dims;
  TfLiteQuantizationParams params;
  int allocation_type;
  size_t bytes;
  const void *allocation;
  const char *name;
  struct TfLiteDelegate *delegate;
  int buffer_handle;
  bool data_is_stale;
  bool is_variable;
  TfLiteQuantization quantization;
  void *sparsity;
  const TfLiteIntArray *dims_signature;
} TfLiteTensor;

typedef struct TfLiteNode {
  TfLiteIntArray *inputs;
  TfLiteIntArray *outputs;
  TfLiteIntArray *intermediates;
  TfLiteIntArray *temporaries;
  void *user_data; /* what the kernel's init() returned */
  /* more fields follow; none is used */
} TfLiteNode;

typedef struct TfLiteRegistration {
  void *(*init)(struct TfLiteContext *context, const char *buffer, size_t length);
  void (*free)(struct TfLiteContext *context, void *buffer);
  TfLiteStatus (*prepare)(struct TfLiteContext *context, TfLiteNode *node);
  TfLiteStatus (*invoke)(struct TfLiteContext *context, TfLiteNode *node);
  const char *(*profiling_string)(const struct TfLiteContext *context, const TfLiteNode *node);
  int32_t builtin_code;
  const char *custom_name;
  int version;
  void *registration_external;
  void *(*async_kernel)(struct TfLiteContext *context, TfLiteNode *node);
  uint64_t inplace_operator;
} TfLiteRegistration;

typedef struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext *context, TfLiteIntArray **execution_plan);
  TfLiteTensor *tensors;
  void *impl_;
  TfLiteStatus (*ResizeTensor)(struct TfLiteContext *, TfLiteTensor *tensor, TfLiteIntArray *new_size);
  void (*ReportError)(struct TfLiteContext *, const char *msg, ...);
  TfLiteStatus (*AddTensors)(struct TfLiteContext *, int tensors_to_add, int *first_new_tensor_index);
  TfLiteStatus (*GetNodeAndRegistration)(struct TfLiteContext *, int node_index, TfLiteNode **node,
                                         TfLiteRegistration **registration);
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(struct TfLiteContext *, TfLiteRegistration registration,
                                                        const TfLiteIntArray *nodes_to_replace,
                                                        struct TfLiteDelegate *delegate);
  /* more fields follow; none is used */
} TfLiteContext;

typedef struct TfLiteDelegate {
  void *data_;
  TfLiteStatus (*Prepare)(TfLiteContext *context, struct TfLiteDelegate *delegate);
  TfLiteStatus (*CopyFromBufferHandle)(TfLiteContext *, struct TfLiteDelegate *, int, TfLiteTensor *);
  TfLiteStatus (*CopyToBufferHandle)(TfLiteContext *, struct TfLiteDelegate *, int, TfLiteTensor *);
  void (*FreeBufferHandle)(TfLiteContext *, struct TfLiteDelegate *, int *);
  int64_t flags;
  void *opaque_delegate_builder;
} TfLiteDelegate;

/* ------------------------------------------------------------------------ */

typedef struct {
  TfLiteDelegate base; /* first: the runtime holds a TfLiteDelegate* to us */
  char mode[32];
  char device[64];
  unsigned char *table;
  uint32_t in_bytes, out_bytes, count;
  int known_class;
  long fail_after;
  long invokes;
  char log[512];
} FakeTpu;

static void log_line(const FakeTpu *tpu, const char *fmt, ...) {
  if (!tpu->log[0]) return;
  FILE *f = fopen(tpu->log, "a");
  if (!f) return;
  va_list args;
  va_start(args, fmt);
  vfprintf(f, fmt, args);
  va_end(args);
  fputc('\n', f);
  fclose(f);
}

static void crash(void) {
  volatile int *nowhere = NULL;
  *nowhere = 1; /* a SIGSEGV, as a libedgetpu built for another runtime gives */
  raise(SIGSEGV);
}

static void load_table(FakeTpu *tpu, const char *path) {
  FILE *f = fopen(path, "rb");
  uint32_t head[3];
  if (!f) return;
  if (fread(head, sizeof head, 1, f) == 1) {
    size_t size = (size_t)head[2] * (head[0] + head[1]);
    tpu->table = malloc(size ? size : 1);
    if (tpu->table && fread(tpu->table, 1, size, f) == size) {
      tpu->in_bytes = head[0];
      tpu->out_bytes = head[1];
      tpu->count = head[2];
    } else {
      free(tpu->table);
      tpu->table = NULL;
    }
  }
  fclose(f);
}


static void *kernel_init(TfLiteContext *context, const char *buffer, size_t length) {
  (void)context;
  (void)length;
  /* For a delegate kernel, buffer is a TfLiteDelegateParams*, whose first field is the delegate. */
  return *(void **)buffer;
}

static void kernel_free(TfLiteContext *context, void *buffer) {
  (void)context;
  (void)buffer;
}

static TfLiteStatus kernel_prepare(TfLiteContext *context, TfLiteNode *node) {
  (void)context;
  (void)node;
  return kTfLiteOk;
}

static TfLiteStatus kernel_invoke(TfLiteContext *context, TfLiteNode *node) {
  FakeTpu *tpu = (FakeTpu *)node->user_data;
  TfLiteTensor *in = &context->tensors[node->inputs->data[0]];
  TfLiteTensor *out = &context->tensors[node->outputs->data[0]];
  tpu->invokes++;
  if (strcmp(tpu->mode, "crash-invoke") == 0) crash();
  if (strcmp(tpu->mode, "fail-invoke") == 0 && tpu->invokes > tpu->fail_after) {
    context->ReportError(context, "Failed to execute request: the USB transfer failed (fake: device unplugged)");
    return kTfLiteError;
  }
  if (tpu->table) {
    if (in->bytes != tpu->in_bytes || out->bytes != tpu->out_bytes) {
      context->ReportError(context, "fake edgetpu: the reply table is for other tensor sizes");
      return kTfLiteError;
    }
    for (uint32_t i = 0; i < tpu->count; i++) {
      const unsigned char *rec = tpu->table + (size_t)i * (tpu->in_bytes + tpu->out_bytes);
      if (memcmp(rec, in->data, tpu->in_bytes) == 0) {
        memcpy(out->data, rec + tpu->in_bytes, tpu->out_bytes);
        log_line(tpu, "invoke reply %u", i);
        return kTfLiteOk;
      }
    }
    size_t i = 0;
    while (i < in->bytes && ((unsigned char *)in->data)[i] == 0) i++;
    if (i == in->bytes) { /* a black picture (edgecam's probe runs one): nothing */
      memset(out->data, 0, out->bytes);
      log_line(tpu, "invoke zeros");
      return kTfLiteOk;
    }
    context->ReportError(context, "fake edgetpu: this input is not in the reply table");
    return kTfLiteError;
  }
  memset(out->data, 0, out->bytes);
  if (tpu->known_class >= 0 && (size_t)tpu->known_class < out->bytes) ((unsigned char *)out->data)[tpu->known_class] = 255;
  log_line(tpu, "invoke known %d", tpu->known_class);
  return kTfLiteOk;
}

static TfLiteStatus delegate_prepare(TfLiteContext *context, TfLiteDelegate *delegate) {
  FakeTpu *tpu = (FakeTpu *)delegate;
  TfLiteIntArray *plan;
  if (strcmp(tpu->mode, "prepare-error") == 0) {
    context->ReportError(context, "Failed to prepare for TPU. Failed precondition: Package requires runtime "
                                  "version (14), which is newer than this runtime version (13).");
    return kTfLiteError;
  }
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk) return kTfLiteError;
  TfLiteIntArray *claim = malloc(sizeof(int) * (size_t)(plan->size + 1));
  claim->size = 0;
  for (int i = 0; i < plan->size; i++) {
    TfLiteNode *node;
    TfLiteRegistration *reg;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &reg) != kTfLiteOk) continue;
    if (reg->custom_name && strcmp(reg->custom_name, "edgetpu-custom-op") == 0) claim->data[claim->size++] = plan->data[i];
  }
  log_line(tpu, "prepare claimed %d node(s)", claim->size);
  TfLiteStatus status = kTfLiteOk;
  if (claim->size) {
    TfLiteRegistration kernel;
    memset(&kernel, 0, sizeof kernel);
    kernel.init = kernel_init;
    kernel.free = kernel_free;
    kernel.prepare = kernel_prepare;
    kernel.invoke = kernel_invoke;
    kernel.custom_name = "FakeEdgeTpuDelegate";
    kernel.version = 1;
    status = context->ReplaceNodeSubsetsWithDelegateKernels(context, kernel, claim, delegate);
  }
  free(claim);
  return status;
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t n, void (*report_error)(const char *)) {
  const char *mode = getenv("EDGECAM_FAKE_EDGETPU");
  FakeTpu *tpu = calloc(1, sizeof *tpu);
  snprintf(tpu->mode, sizeof tpu->mode, "%s", mode && *mode ? mode : "ok");
  const char *logpath = getenv("EDGECAM_FAKE_EDGETPU_LOG");
  if (logpath) snprintf(tpu->log, sizeof tpu->log, "%s", logpath);
  for (size_t i = 0; i < n; i++) {
    log_line(tpu, "option %s=%s", keys[i], values[i]);
    if (strcmp(keys[i], "device") == 0) snprintf(tpu->device, sizeof tpu->device, "%s", values[i]);
  }
  log_line(tpu, "create mode=%s device=%s", tpu->mode, tpu->device);
  if (strcmp(tpu->mode, "crash") == 0) crash();
  if (strcmp(tpu->mode, "nodevice") == 0) {
    /* What libedgetpu does without a Coral: no delegate, and no reason given. */
    (void)report_error;
    free(tpu);
    return NULL;
  }
  const char *table = getenv("EDGECAM_FAKE_EDGETPU_REPLIES");
  if (table && *table) load_table(tpu, table);
  const char *cls = getenv("EDGECAM_FAKE_EDGETPU_CLASS");
  tpu->known_class = cls ? atoi(cls) : 0;
  const char *after = getenv("EDGECAM_FAKE_EDGETPU_FAIL_AFTER");
  tpu->fail_after = after ? atol(after) : 0;
  tpu->base.data_ = tpu;
  tpu->base.Prepare = delegate_prepare;
  /* As the real one: a delegate that may leave shapes dynamic. The runtime then
     skips preparing the original graph first, which would fail on the very
     custom op this delegate is here to claim. */
  tpu->base.flags = 1; /* kTfLiteDelegateFlagsAllowDynamicTensors */
  return &tpu->base;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate *delegate) {
  FakeTpu *tpu = (FakeTpu *)delegate;
  if (!tpu) return;
  log_line(tpu, "destroy after %ld invoke(s)", tpu->invokes);
  free(tpu->table);
  free(tpu);
}
