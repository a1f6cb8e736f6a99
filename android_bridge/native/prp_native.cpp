// JNI layer under org.prpnas.bridge.NativeEngine: one ExecuTorch program (a bundle's
// supernet.pte), opened once through ExecuTorch's C++ Module, with every method loaded up front
// (residency "all"), or with only the method last run loaded (residency "active": a run of
// another method first unloads it and loads its own; see "Residency" below).
//
// The same source builds on a Linux desktop against the executorch wheel's libraries
// (build_native.sh) and for Android with the NDK against an ExecuTorch build for the device
// (CMakeLists.txt). It depends on nothing but JNI and the ExecuTorch runtime headers.
//
// Concurrency. A Method is not re-entrant, so each method has its own mutex and calls of one
// method are serialised. Calls of different methods run in parallel, which is safe here because
// the methods share no mutable state except the Module's temporary allocator: Method resets its
// temp allocator after every instruction, so two methods sharing one plain allocator could free
// each other's scratch memory mid-kernel. The Module is therefore given ThreadTempAllocator,
// whose allocations belong to the calling thread, and a thread runs one method at a time.
// Methods get their own planned memory (share_memory_arenas is left false). The engine itself
// (open/close) is guarded on the Java side by a read-write lock. With residency "active" every
// run holds the engine's residency mutex, so runs are serialised and none can meet a method
// being unloaded.

#include <jni.h>

#include <executorch/extension/module/module.h>
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/backend/options.h>
#include <executorch/runtime/core/error.h>
#include <executorch/runtime/core/evalue.h>
#include <executorch/runtime/core/exec_aten/exec_aten.h>
#include <executorch/runtime/core/memory_allocator.h>

#include <cstdint>
#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <vector>

// ExecuTorch's CPU thread pool (XNNPACK's threads). The wheel ships no threadpool.h, so the two
// members used here are declared as libexecutorch_threadpool exports them (ExecuTorch 1.x's
// extension/threadpool/threadpool.h); only their symbols are needed, not the class's layout.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace {

using executorch::aten::ScalarType;
using executorch::aten::Tensor;
using executorch::aten::TensorImpl;
using executorch::extension::Module;
using executorch::runtime::Error;
using executorch::runtime::EValue;
using executorch::runtime::MemoryAllocator;

// ----------------------------------------------------------------------------------------------
// Temporary memory owned by the calling thread (see the concurrency note at the top).

struct ThreadScratch {
  std::vector<void*> blocks;
  void release() {
    for (void* block : blocks) {
      std::free(block);
    }
    blocks.clear();
  }
  ~ThreadScratch() { release(); }
};

thread_local ThreadScratch t_scratch;

class ThreadTempAllocator final : public MemoryAllocator {
 public:
  ThreadTempAllocator() : MemoryAllocator(0, nullptr) {}

  void* allocate(size_t size, size_t alignment = kDefaultAlignment) override {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
      return nullptr;
    }
    void* block = std::malloc(size + alignment);
    if (block == nullptr) {
      return nullptr;
    }
    try {
      t_scratch.blocks.push_back(block);
    } catch (const std::bad_alloc&) {
      std::free(block);
      return nullptr;
    }
    auto address = reinterpret_cast<uintptr_t>(block);
    address = (address + alignment - 1) & ~(uintptr_t(alignment) - 1);
    return reinterpret_cast<void*>(address);
  }

  void reset() override { t_scratch.release(); }
};

// ----------------------------------------------------------------------------------------------
// The engine behind one Java NativeEngine.

struct MethodSlot {
  std::mutex mutex;
  std::vector<int32_t> input_sizes;  // the program's input shape, e.g. {1, 3, 32, 32}
  ScalarType input_type = ScalarType::Float;
  size_t num_inputs = 0;
};

// How a program names the constants XNNPACK's weight cache keys packed weights by (see
// "XNNPACK's weight cache" below).
enum class WeightNames {
  kByContent,  // every name derives from the bytes (a sha256 prefix): no two programs collide
  kOther,      // e.g. a counter (w0, w1, ...), alike in every bundle exported before content names
};

struct Engine;

// The engines open with XNNPACK's weight cache, under g_weight_cache_mutex.
std::mutex g_weight_cache_mutex;
std::vector<const Engine*> g_cached_engines;

struct Engine {
  std::string path;
  std::unique_ptr<Module> module;
  std::map<std::string, std::unique_ptr<MethodSlot>> methods;  // sorted by name
  bool uses_weight_cache = false;
  WeightNames names = WeightNames::kOther;
  std::string other_name;  // with kOther: a name that is not a content key, for messages
  bool active_only = false;  // residency "active": only `resident` is loaded
  std::mutex residency;      // held by every run when active_only
  std::string resident;      // the loaded method when active_only; empty: none

  ~Engine() {
    // The methods and the program go first: their packed weights leave the cache with them.
    methods.clear();
    module.reset();
    if (uses_weight_cache) {
      std::lock_guard<std::mutex> guard(g_weight_cache_mutex);
      for (auto it = g_cached_engines.begin(); it != g_cached_engines.end(); ++it) {
        if (*it == this) {
          g_cached_engines.erase(it);
          break;
        }
      }
    }
  }
};

// ----------------------------------------------------------------------------------------------
// Errors: C++ never lets an exception cross into the JVM; it throws a Java exception and returns.

const char* kIOException = "java/io/IOException";
const char* kIllegalArgument = "java/lang/IllegalArgumentException";
const char* kIllegalState = "java/lang/IllegalStateException";

void throw_java(JNIEnv* env, const char* cls, const std::string& message) {
  if (env->ExceptionCheck()) {
    return;  // keep the first one
  }
  jclass type = env->FindClass(cls);
  if (type != nullptr) {
    env->ThrowNew(type, message.c_str());
  }
}

std::string describe(Error error) {
  std::ostringstream out;
  out << executorch::runtime::to_string(error) << " (0x" << std::hex
      << static_cast<unsigned>(error) << ")";
  switch (error) {
    case Error::InvalidProgram:
      out << ": not a valid ExecuTorch program (truncated or corrupt file?)";
      break;
    case Error::AccessFailed:
      out << ": the file could not be read";
      break;
    case Error::NotFound:
      out << ": not found in the program";
      break;
    case Error::OperatorMissing:
      out << ": an operator the program needs has no kernel in this native library";
      break;
    case Error::DelegateInvalidCompatibility:
      out << ": a delegate (backend) blob is corrupt, or was made for another runtime version";
      break;
    case Error::MemoryAllocationFailed:
    case Error::DelegateMemoryAllocationFailed:
      out << ": out of memory";
      break;
    case Error::InvalidArgument:
      out << ": invalid argument";
      break;
    default:
      break;
  }
  return out.str();
}

// Errors that mean this runtime cannot run the program (rather than the file being bad).
bool is_runtime_fault(Error error) {
  switch (error) {
    case Error::OperatorMissing:
    case Error::NotSupported:
    case Error::NotImplemented:
    case Error::MemoryAllocationFailed:
    case Error::DelegateMemoryAllocationFailed:
      return true;
    default:
      return false;
  }
}

std::string shape_text(const int32_t* sizes, size_t dim) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < dim; ++i) {
    out << (i ? ", " : "") << sizes[i];
  }
  out << "]";
  return out.str();
}

std::string shape_text(const std::vector<int64_t>& sizes) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < sizes.size(); ++i) {
    out << (i ? ", " : "") << sizes[i];
  }
  out << "]";
  return out.str();
}

std::string known_methods(const Engine& engine) {
  std::string names;
  for (const auto& entry : engine.methods) {
    names += (names.empty() ? "" : ", ") + entry.first;
  }
  return names;
}

std::string java_string(JNIEnv* env, jstring value) {
  if (value == nullptr) {
    return std::string();
  }
  const char* chars = env->GetStringUTFChars(value, nullptr);
  if (chars == nullptr) {
    return std::string();
  }
  std::string out(chars);
  env->ReleaseStringUTFChars(value, chars);
  return out;
}

Engine* engine_of(JNIEnv* env, jlong handle) {
  auto* engine = reinterpret_cast<Engine*>(handle);
  if (engine == nullptr) {
    throw_java(env, kIllegalState, "the engine is closed");
  }
  return engine;
}

// ----------------------------------------------------------------------------------------------
// XNNPACK's weight cache. Without it, XNNPACK packs each method's weights into buffers of that
// method's own, so a weight the program stores once (named data shared by several methods) is in
// memory once per method that uses it. With it, packed weights are looked up by name in one
// process-wide cache and shared. It is a backend option, read as each method initialises its
// delegate; on by default here (ExecuTorch's Android and Apple presets turn it on too), off only
// when NativeEngine.setWeightCache(false) says so before a program loads.
//
// ExecuTorch 1.5.1's cache keys packed weights by their name in the program only (the names of
// a kernel and its bias, plus XNNPACK's seed for the packing), process-wide. Bundles exported
// before content names named their weights by a counter (w0, w1, ...), alike in every bundle:
// with two such programs open at once, the second ran the first's packed weights (wrong
// logits, NaN; found here, bench/results "XNNPACK's weight cache"). prp-export now names each
// constant by the first 16 hex digits of the sha256 of its bytes (XNNPACK's own key is all 64):
// two programs share a name only where they hold the same bytes, and then sharing the packed
// weights is right (the cache counts references; each program's close drops its own). So the
// engine reads the names of the program's named data: programs whose every name is such a key
// (16 or 64 lowercase hex digits, or "scale_" and those) may be open together; a program with
// any other name is opened only while no other program is, and no other while it is open.
// The names are taken as the exporter wrote them, not hashed again here.

bool g_weight_cache_chosen = false;  // set by setWeightCache, or by the first open
bool g_weight_cache_enabled = true;

Error set_weight_cache_locked(bool enabled) {
  executorch::runtime::BackendOptions<1> options;
  Error error = options.set_option("weight_cache_enabled", enabled);
  if (error == Error::Ok) {
    error = executorch::runtime::set_option("XnnpackBackend", options.view());
  }
  if (error == Error::Ok) {
    g_weight_cache_chosen = true;
    g_weight_cache_enabled = enabled;
  }
  return error;
}

bool is_hex_key(const std::string& key) {
  if (key.size() != 16 && key.size() != 64) {
    return false;
  }
  for (char c : key) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

// Whether `key` is a content key: a sha256 prefix or digest, as prp-export and XNNPACK name
// weights ("scale_" and one, for the scales of XNNPACK's own int8 weights).
bool is_content_key(const std::string& key) {
  static const std::string kScale = "scale_";
  return is_hex_key(key.compare(0, kScale.size(), kScale) == 0 ? key.substr(kScale.size()) : key);
}

// How the program names its named data; sets `other` to the first name that is not a content key.
WeightNames weight_names(const executorch::runtime::Program& program, std::string& other) {
  auto map = program.get_named_data_map();
  if (!map.ok()) {
    return WeightNames::kByContent;  // no named data: no name for the cache to key by
  }
  auto count = map.get()->get_num_keys();
  if (!count.ok()) {
    other = "(unreadable)";
    return WeightNames::kOther;
  }
  for (uint32_t i = 0; i < count.get(); ++i) {
    auto key = map.get()->get_key(i);
    if (!key.ok() || key.get() == nullptr || !is_content_key(key.get())) {
      other = key.ok() && key.get() != nullptr ? key.get() : "(unreadable)";
      return WeightNames::kOther;
    }
  }
  return WeightNames::kByContent;
}

// Registers `engine` as using the weight cache where it is on; returns false with a Java
// exception pending where its names could collide with those of an open program.
bool admit_to_weight_cache(JNIEnv* env, Engine& engine) {
  std::lock_guard<std::mutex> guard(g_weight_cache_mutex);
  if (!g_weight_cache_chosen) {
    Error error = set_weight_cache_locked(true);
    if (error != Error::Ok) {
      throw_java(env, kIllegalState, "cannot turn XNNPACK's weight cache on: " + describe(error));
      return false;
    }
  }
  if (!g_weight_cache_enabled) {
    return true;
  }
  for (const Engine* open : g_cached_engines) {
    if (engine.names == WeightNames::kByContent && open->names == WeightNames::kByContent) {
      continue;
    }
    const Engine& counted = engine.names == WeightNames::kOther ? engine : *open;
    throw_java(
        env,
        kIllegalState,
        "cannot open " + engine.path + " while " + open->path + " is open: XNNPACK's weight "
            "cache is on, ExecuTorch's cache keys packed weights by name only, and " +
            counted.path + " names its weights by something other than their bytes (e.g. '" +
            counted.other_name + "': a bundle exported before prp-export named weights by "
            "content), so the two could run each other's weights; close the other "
            "NativeEngine first, export that bundle again, or call "
            "NativeEngine.setWeightCache(false) before loading both");
    return false;
  }
  g_cached_engines.push_back(&engine);
  engine.uses_weight_cache = true;
  return true;
}

// Hands memory freed by an unloaded method back to the system where the C library keeps it
// (glibc keeps small freed blocks in its heap; Android's allocator returns them by itself).
void release_freed_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

// Opens the program and loads every method (with `active_only`, loads each once to check it,
// then unloads it); throws IOException or IllegalStateException.
std::unique_ptr<Engine> open_engine(JNIEnv* env, const std::string& path, bool active_only) {
  auto engine = std::make_unique<Engine>();
  engine->path = path;
  engine->active_only = active_only;
  engine->module = std::make_unique<Module>(
      path,
      Module::LoadMode::Mmap,
      /*event_tracer=*/nullptr,
      /*memory_allocator=*/nullptr,
      std::make_unique<ThreadTempAllocator>());
  // InternalConsistency runs the flatbuffer verifier over the program: with the default
  // (Minimal) check, a file corrupted in its header region crashed the process on load.
  Error error = engine->module->load(executorch::runtime::Program::Verification::InternalConsistency);
  if (error != Error::Ok) {
    std::string why = describe(error);
    if (error == Error::InvalidArgument) {
      why += " (the file is too short or malformed to be an ExecuTorch program)";
    }
    throw_java(
        env,
        is_runtime_fault(error) ? kIllegalState : kIOException,
        "cannot load ExecuTorch program " + path + ": " + why);
    return nullptr;
  }
  // The program is parsed; no method (no delegate, so nothing packed) is loaded yet.
  engine->names = weight_names(*engine->module->program(), engine->other_name);
  if (!admit_to_weight_cache(env, *engine)) {
    return nullptr;
  }
  auto names = engine->module->method_names();
  if (!names.ok()) {
    throw_java(
        env, kIOException, "cannot list the methods of " + path + ": " + describe(names.error()));
    return nullptr;
  }
  if (names->empty()) {
    throw_java(env, kIOException, "ExecuTorch program " + path + " has no methods");
    return nullptr;
  }
  for (const std::string& name : *names) {
    error = engine->module->load_method(name);
    if (error != Error::Ok) {
      throw_java(
          env,
          is_runtime_fault(error) ? kIllegalState : kIOException,
          "cannot load method " + name + " of " + path + ": " + describe(error));
      return nullptr;
    }
    auto meta = engine->module->method_meta(name);
    if (!meta.ok()) {
      throw_java(env, kIOException, "no metadata for method " + name + ": " + describe(meta.error()));
      return nullptr;
    }
    auto slot = std::make_unique<MethodSlot>();
    slot->num_inputs = meta->num_inputs();
    if (slot->num_inputs >= 1) {
      auto info = meta->input_tensor_meta(0);
      if (info.ok()) {
        slot->input_sizes.assign(info->sizes().begin(), info->sizes().end());
        slot->input_type = info->scalar_type();
      }
    }
    engine->methods.emplace(name, std::move(slot));
    if (active_only) {
      engine->module->unload_method(name);
    }
  }
  if (active_only) {
    release_freed_memory();
  }
  return engine;
}

// ----------------------------------------------------------------------------------------------
// Residency "active". Each loaded method holds XNNPACK's runtime for its graph (operators,
// indirection buffers, workspace) and, with the weight cache, references to its packed weights;
// measured on the shipped bundle that is about 2.4 MiB over five methods beside the packed
// weights (bench/results "prp-export --low-memory"). A phone that switches paths by battery
// level runs one path for minutes to hours, so holding only that path's method trades a load on
// each switch (re-packing the weights no loaded method shares; bench/weight_cache.py measures
// it) for that memory.

// Makes `name` the one loaded method of an active-only engine; the caller holds `residency`.
// Returns false with a Java exception pending where it cannot be loaded.
bool make_resident(JNIEnv* env, Engine& engine, const std::string& name) {
  if (engine.resident == name) {
    return true;
  }
  if (!engine.resident.empty()) {
    engine.module->unload_method(engine.resident);
    engine.resident.clear();
    release_freed_memory();
  }
  Error error = engine.module->load_method(name);
  if (error != Error::Ok) {
    throw_java(
        env,
        is_runtime_fault(error) ? kIllegalState : kIOException,
        "cannot load method " + name + " of " + engine.path + ": " + describe(error));
    return false;
  }
  engine.resident = name;
  return true;
}

// Runs one row (batch-1 tensor) through a method; the caller holds the method's mutex.
// Appends the first output's values to `out`; returns false with a Java exception pending.
bool run_once(
    JNIEnv* env,
    Engine& engine,
    const std::string& name,
    MethodSlot& slot,
    float* data,
    std::vector<float>& out) {
  std::vector<int32_t> sizes = slot.input_sizes;  // TensorImpl takes non-const pointers
  const size_t dim = sizes.size();
  std::vector<uint8_t> dim_order(dim);
  std::vector<int32_t> strides(dim);
  int32_t stride = 1;
  for (size_t i = dim; i-- > 0;) {
    dim_order[i] = static_cast<uint8_t>(i);
    strides[i] = stride;
    stride *= sizes[i];
  }
  TensorImpl impl(
      ScalarType::Float,
      static_cast<ssize_t>(dim),
      sizes.data(),
      data,
      dim_order.data(),
      strides.data());
  Tensor tensor(&impl);
  auto result = engine.module->execute(name, std::vector<EValue>{EValue(tensor)});
  if (!result.ok()) {
    throw_java(
        env,
        result.error() == Error::InvalidArgument ? kIllegalArgument : kIllegalState,
        "method " + name + " failed: " + describe(result.error()));
    return false;
  }
  if (result->empty() || !(*result)[0].isTensor()) {
    throw_java(env, kIllegalState, "method " + name + " returned no tensor");
    return false;
  }
  const Tensor& logits = (*result)[0].toTensor();
  if (logits.scalar_type() != ScalarType::Float) {
    throw_java(env, kIllegalState, "method " + name + " returned a non-float32 tensor");
    return false;
  }
  const float* values = logits.const_data_ptr<float>();
  out.insert(out.end(), values, values + logits.numel());
  return true;
}

}  // namespace

// ----------------------------------------------------------------------------------------------
// JNI entry points (see NativeEngine.java).

extern "C" {

JNIEXPORT jlong JNICALL
Java_org_prpnas_bridge_NativeEngine_nativeOpen(
    JNIEnv* env,
    jclass,
    jstring jpath,
    jboolean active_only) {
  std::string path = java_string(env, jpath);
  if (env->ExceptionCheck()) {
    return 0;
  }
  try {
    std::unique_ptr<Engine> engine = open_engine(env, path, active_only == JNI_TRUE);
    return engine ? reinterpret_cast<jlong>(engine.release()) : 0;
  } catch (const std::exception& e) {
    throw_java(env, kIllegalState, "cannot load " + path + ": " + e.what());
    return 0;
  }
}

JNIEXPORT jobjectArray JNICALL
Java_org_prpnas_bridge_NativeEngine_nativeMethods(JNIEnv* env, jclass, jlong handle) {
  Engine* engine = engine_of(env, handle);
  if (engine == nullptr) {
    return nullptr;
  }
  jclass string_class = env->FindClass("java/lang/String");
  if (string_class == nullptr) {
    return nullptr;
  }
  jobjectArray names =
      env->NewObjectArray(static_cast<jsize>(engine->methods.size()), string_class, nullptr);
  if (names == nullptr) {
    return nullptr;
  }
  jsize index = 0;
  for (const auto& entry : engine->methods) {
    jstring name = env->NewStringUTF(entry.first.c_str());
    if (name == nullptr) {
      return nullptr;
    }
    env->SetObjectArrayElement(names, index++, name);
    env->DeleteLocalRef(name);
  }
  return names;
}

JNIEXPORT jlongArray JNICALL Java_org_prpnas_bridge_NativeEngine_nativeInputShape(
    JNIEnv* env,
    jclass,
    jlong handle,
    jstring jmethod) {
  Engine* engine = engine_of(env, handle);
  if (engine == nullptr) {
    return nullptr;
  }
  std::string name = java_string(env, jmethod);
  auto found = engine->methods.find(name);
  if (found == engine->methods.end()) {
    throw_java(
        env,
        kIllegalArgument,
        "unknown method '" + name + "'; the program has: " + known_methods(*engine));
    return nullptr;
  }
  const std::vector<int32_t>& sizes = found->second->input_sizes;
  std::vector<jlong> values(sizes.begin(), sizes.end());
  jlongArray shape = env->NewLongArray(static_cast<jsize>(values.size()));
  if (shape != nullptr) {
    env->SetLongArrayRegion(shape, 0, static_cast<jsize>(values.size()), values.data());
  }
  return shape;
}

// Runs `method` on float32 `input` of `shape`. The program's own shape is taken as is; a batch
// of N rows is also taken when the program is exported at batch 1 (rows run one after another,
// as the Python ExecuTorch backend does). Returns the logits of every row, concatenated.
JNIEXPORT jfloatArray JNICALL Java_org_prpnas_bridge_NativeEngine_nativeRun(
    JNIEnv* env,
    jclass,
    jlong handle,
    jstring jmethod,
    jfloatArray jinput,
    jlongArray jshape) {
  Engine* engine = engine_of(env, handle);
  if (engine == nullptr) {
    return nullptr;
  }
  if (jinput == nullptr || jshape == nullptr) {
    throw_java(env, kIllegalArgument, "input and shape must not be null");
    return nullptr;
  }
  try {
    std::string name = java_string(env, jmethod);
    auto found = engine->methods.find(name);
    if (found == engine->methods.end()) {
      throw_java(
          env,
          kIllegalArgument,
          "unknown method '" + name + "'; the program has: " + known_methods(*engine));
      return nullptr;
    }
    MethodSlot& slot = *found->second;
    if (slot.num_inputs != 1 || slot.input_type != ScalarType::Float) {
      throw_java(
          env,
          kIllegalArgument,
          "method " + name + " does not take exactly one float32 tensor");
      return nullptr;
    }

    std::vector<int64_t> shape(static_cast<size_t>(env->GetArrayLength(jshape)));
    env->GetLongArrayRegion(jshape, 0, static_cast<jsize>(shape.size()),
                            reinterpret_cast<jlong*>(shape.data()));
    const std::vector<int32_t>& expected = slot.input_sizes;
    const std::string wanted = "float32 " + shape_text(expected.data(), expected.size()) +
        (expected.size() > 0 && expected[0] == 1 ? " (or a batch [N, ...] of such rows)" : "");
    bool same_row = shape.size() == expected.size() && !shape.empty();
    for (size_t i = 1; same_row && i < shape.size(); ++i) {
      same_row = shape[i] == expected[i];
    }
    const bool exact = same_row && shape[0] == expected[0];
    const bool batch = same_row && expected[0] == 1 && shape[0] >= 1;
    if (!exact && !batch) {
      throw_java(
          env,
          kIllegalArgument,
          "method " + name + " takes " + wanted + "; got shape " + shape_text(shape));
      return nullptr;
    }
    int64_t row_size = 1;
    for (size_t i = 1; i < expected.size(); ++i) {
      row_size *= expected[i];
    }
    const int64_t rows = exact ? 1 : shape[0];
    const int64_t per_call = exact ? row_size * expected[0] : row_size;
    const jsize length = env->GetArrayLength(jinput);
    if (static_cast<int64_t>(length) != rows * per_call) {
      std::ostringstream message;
      message << "input has " << length << " values; shape " << shape_text(shape) << " needs "
              << rows * per_call;
      throw_java(env, kIllegalArgument, message.str());
      return nullptr;
    }

    std::vector<float> input(static_cast<size_t>(length));
    env->GetFloatArrayRegion(jinput, 0, length, input.data());
    std::vector<float> logits;
    {
      std::unique_lock<std::mutex> resident(engine->residency, std::defer_lock);
      if (engine->active_only) {
        resident.lock();
        if (!make_resident(env, *engine, name)) {
          return nullptr;
        }
      }
      std::lock_guard<std::mutex> guard(slot.mutex);
      for (int64_t row = 0; row < rows; ++row) {
        if (!run_once(env, *engine, name, slot, input.data() + row * per_call, logits)) {
          return nullptr;
        }
      }
    }
    jfloatArray out = env->NewFloatArray(static_cast<jsize>(logits.size()));
    if (out != nullptr) {
      env->SetFloatArrayRegion(out, 0, static_cast<jsize>(logits.size()), logits.data());
    }
    return out;
  } catch (const std::exception& e) {
    throw_java(env, kIllegalState, std::string("native run failed: ") + e.what());
    return nullptr;
  }
}

JNIEXPORT void JNICALL
Java_org_prpnas_bridge_NativeEngine_nativeClose(JNIEnv*, jclass, jlong handle) {
  delete reinterpret_cast<Engine*>(handle);
}

// The pool is process-wide: it serves every engine. Resetting it while a method runs is unsafe
// (hence ExecuTorch's name), so NativeEngine.setThreads documents: call it before running.
JNIEXPORT jint JNICALL
Java_org_prpnas_bridge_NativeEngine_nativeThreadCount(JNIEnv* env, jclass) {
  auto* pool = executorch::extension::threadpool::get_threadpool();
  if (pool == nullptr) {
    throw_java(env, kIllegalState, "ExecuTorch has no thread pool");
    return 0;
  }
  return static_cast<jint>(pool->get_thread_count());
}

JNIEXPORT jboolean JNICALL
Java_org_prpnas_bridge_NativeEngine_nativeSetWeightCache(JNIEnv* env, jclass, jboolean enabled) {
  std::lock_guard<std::mutex> guard(g_weight_cache_mutex);
  Error error = set_weight_cache_locked(enabled == JNI_TRUE);
  if (error != Error::Ok) {
    throw_java(env, kIllegalState, "cannot set XNNPACK's weight cache: " + describe(error));
  }
  return g_weight_cache_enabled ? JNI_TRUE : JNI_FALSE;
}

JNIEXPORT jboolean JNICALL
Java_org_prpnas_bridge_NativeEngine_nativeWeightCache(JNIEnv*, jclass) {
  std::lock_guard<std::mutex> guard(g_weight_cache_mutex);
  return g_weight_cache_enabled ? JNI_TRUE : JNI_FALSE;
}

JNIEXPORT jint JNICALL
Java_org_prpnas_bridge_NativeEngine_nativeSetThreads(JNIEnv* env, jclass, jint count) {
  auto* pool = executorch::extension::threadpool::get_threadpool();
  if (pool == nullptr || !pool->_unsafe_reset_threadpool(static_cast<uint32_t>(count))) {
    throw_java(env, kIllegalState, "cannot set ExecuTorch's thread pool to " +
                                       std::to_string(count) + " threads");
    return 0;
  }
  return static_cast<jint>(pool->get_thread_count());
}

}  // extern "C"
