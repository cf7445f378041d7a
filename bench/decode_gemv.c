/* The matrix products of one SmolLM2-135M decoding step alone (30 layers' qkv 960×576, o 576×576,
 * gate|up 3072×576, down 576×1536, then the tied LM head 49152×576: 538 MB of fp32 weights, distinct
 * per layer so they stream from memory), y (M, N) = x (M, K) · Wᵀ, on 2 threads, best of 15 steps:
 * - dnnl_sgemm (prm's default backend), OpenBLAS's cblas_sgemv (M = 1) and cblas_sgemm;
 * - hand-written AVX-512 loops, each core taking a contiguous half of every matrix's rows, the forms
 *   StreamedLinear was chosen from: at M = 1 one row at a time (one sequential stream) or four rows
 *   interleaved; at M = 8 R rows against all 8 inputs, without a software prefetch or with one
 *   16 KB ahead into L1 (T0) or L2 (T1);
 * - a plain parallel read of the same weights (the bandwidth these could reach) and of 512 MB.
 *   gcc -O3 -march=native -fopenmp -o decode_gemv bench/decode_gemv.c -ldnnl -lopenblas
 *   $LOCK ./decode_gemv 1; $LOCK ./decode_gemv 8 */
#include <dnnl.h>
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
void openblas_set_num_threads(int);
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}

enum { NONE, T0, T1 };
#define PREFETCH_AHEAD 4096 /* floats: 16 KB */
static inline __attribute__((always_inline)) void prefetch(const float*p,int hint){
  if(hint==T0)_mm_prefetch((const char*)(p+PREFETCH_AHEAD),_MM_HINT_T0);
  else if(hint==T1)_mm_prefetch((const char*)(p+PREFETCH_AHEAD),_MM_HINT_T1);
}
/* rows [r0, r1) of y = x Wᵀ, M = 1: `interleave` rows at a time (1: one sequential stream). */
static void rows_m1(const float*W,int K,const float*x,float*y,int r0,int r1,int interleave){
  if(interleave==1){
    for(int r=r0;r<r1;r++){const float*w=W+(size_t)r*K;__m512 a0=_mm512_setzero_ps(),a1=a0,a2=a0,a3=a0;int k=0;
      for(;k+64<=K;k+=64){a0=_mm512_fmadd_ps(_mm512_loadu_ps(w+k),_mm512_loadu_ps(x+k),a0);a1=_mm512_fmadd_ps(_mm512_loadu_ps(w+k+16),_mm512_loadu_ps(x+k+16),a1);
        a2=_mm512_fmadd_ps(_mm512_loadu_ps(w+k+32),_mm512_loadu_ps(x+k+32),a2);a3=_mm512_fmadd_ps(_mm512_loadu_ps(w+k+48),_mm512_loadu_ps(x+k+48),a3);}
      for(;k<K;k+=16)a0=_mm512_fmadd_ps(_mm512_loadu_ps(w+k),_mm512_loadu_ps(x+k),a0);
      y[r]=_mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0,a1),_mm512_add_ps(a2,a3)));}
  } else {
    for(int r=r0;r+4<=r1;r+=4){__m512 a[4];for(int i=0;i<4;i++)a[i]=_mm512_setzero_ps();const float*w=W+(size_t)r*K;
      for(int k=0;k<K;k+=16){__m512 xv=_mm512_loadu_ps(x+k);for(int i=0;i<4;i++)a[i]=_mm512_fmadd_ps(_mm512_loadu_ps(w+i*K+k),xv,a[i]);}
      for(int i=0;i<4;i++)y[r+i]=_mm512_reduce_add_ps(a[i]);}
  }
}
/* rows [r0, r1) of y (8, N) = x (8, K) Wᵀ, R rows of W at a time against all 8 inputs (R ≤ 3).
 * Inlined where R and hint are constants, so the accumulators live in registers. */
static inline __attribute__((always_inline)) void rows_m8(const float*W,int K,const float*x,float*y,int N,int r0,int r1,int R,int hint){
  for(int r=r0;r+R<=r1;r+=R){const float*w=W+(size_t)r*K;__m512 a[3][8];
    for(int i=0;i<R;i++)for(int m=0;m<8;m++)a[i][m]=_mm512_setzero_ps();
    for(int k=0;k<K;k+=16){__m512 v[3];
      for(int i=0;i<R;i++){v[i]=_mm512_loadu_ps(w+i*K+k);prefetch(w+i*K+k,hint);}
      for(int m=0;m<8;m++){__m512 xv=_mm512_loadu_ps(x+m*K+k);for(int i=0;i<R;i++)a[i][m]=_mm512_fmadd_ps(v[i],xv,a[i][m]);}}
    for(int i=0;i<R;i++)for(int m=0;m<8;m++)y[m*N+r+i]=_mm512_reduce_add_ps(a[i][m]);}
}
static float sum_rows(const float*W,size_t from,size_t to){
  __m512 a=_mm512_setzero_ps(),b=a;for(size_t i=from;i+32<=to;i+=32){a=_mm512_add_ps(a,_mm512_loadu_ps(W+i));b=_mm512_add_ps(b,_mm512_loadu_ps(W+i+16));}
  return _mm512_reduce_add_ps(_mm512_add_ps(a,b));
}

static int M; static float *W,*x,*y; static volatile float sink;
static const int shapes[5][2]={{960,576},{576,576},{3072,576},{576,1536},{49152,576}};
/* One step: 30 layers' four products, then the LM head (shape 4), through implementation `impl`. */
static void step(int impl,int R,int hint){
  const float*w=W;
  for(int l=0;l<=30;l++) for(int s=0;s<4;s++){
    if(l==30&&s>0)break;
    int N=shapes[l==30?4:s][0],K=shapes[l==30?4:s][1];
    if(impl==0) dnnl_sgemm('N','T',M,N,K,1,x,K,w,K,0,y,N);
    else if(impl==1) cblas_sgemv(CblasRowMajor,CblasNoTrans,N,K,1,w,K,x,1,0,y,1);
    else if(impl==2) cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,M,N,K,1,x,K,w,K,0,y,N);
    else if(impl==3){
      #pragma omp parallel num_threads(2)
      {int t=omp_get_thread_num(),step=M==1?4:R,half=(N/2/step)*step;
       int r0=t?half:0,r1=t?N:half;
       if(M==1)rows_m1(w,K,x,y,r0,r1,R);
       else switch(R*3+hint){
         case 3:rows_m8(w,K,x,y,N,r0,r1,1,NONE);break; case 4:rows_m8(w,K,x,y,N,r0,r1,1,T0);break; case 5:rows_m8(w,K,x,y,N,r0,r1,1,T1);break;
         case 6:rows_m8(w,K,x,y,N,r0,r1,2,NONE);break; case 7:rows_m8(w,K,x,y,N,r0,r1,2,T0);break; case 8:rows_m8(w,K,x,y,N,r0,r1,2,T1);break;
         case 9:rows_m8(w,K,x,y,N,r0,r1,3,NONE);break; case 10:rows_m8(w,K,x,y,N,r0,r1,3,T0);break; default:rows_m8(w,K,x,y,N,r0,r1,3,T1);}}
    } else {
      #pragma omp parallel num_threads(2)
      {int t=omp_get_thread_num();size_t n=(size_t)N*K;sink+=sum_rows(w,t?n/2:0,t?n:n/2);}
    }
    w+=(size_t)N*K;}
}
static void report(const char*name,int impl,int R,int hint,double bytes,double flops){
  double best=1e9;for(int rep=0;rep<15;rep++){double t0=now();step(impl,R,hint);double t=now()-t0;if(t<best)best=t;}
  printf("M=%d %-34s %6.2f ms per step, %5.1f GB/s of weights, %6.1f GFLOP/s\n",M,name,best*1e3,bytes/best/1e9,flops/best/1e9);
}
int main(int argc,char**argv){
  M=argc>1?atoi(argv[1]):1;
  if(M!=1&&M!=8){fprintf(stderr,"M is 1 or 8\n");return 2;}
  size_t floats=0; for(int s=0;s<4;s++) floats+=30*(size_t)shapes[s][0]*shapes[s][1];
  floats+=(size_t)shapes[4][0]*shapes[4][1];
  W=aligned_alloc(64,floats*4); for(size_t i=0;i<floats;i++)W[i]=(i%13)*0.01f;
  x=aligned_alloc(64,8*1536*4); y=aligned_alloc(64,8*49152*4); for(int i=0;i<8*1536;i++)x[i]=0.1f;
  omp_set_num_threads(2); openblas_set_num_threads(2);
  double bytes=floats*4.0, flops=2.0*M*floats;
  report("dnnl_sgemm",0,0,NONE,bytes,flops);
  if(M==1) report("cblas_sgemv",1,0,NONE,bytes,flops);
  report("cblas_sgemm",2,0,NONE,bytes,flops);
  if(M==1){
    report("AVX-512, one row at a time",3,1,NONE,bytes,flops);
    report("AVX-512, four rows interleaved",3,4,NONE,bytes,flops);
  } else {
    const char*hints[3]={"no prefetch","prefetch T0","prefetch T1 (L2)"};
    char name[64];
    for(int R=1;R<=3;R++)for(int h=NONE;h<=T1;h++){snprintf(name,sizeof name,"AVX-512, %d row(s) x 8, %s",R,hints[h]);report(name,3,R,h,bytes,flops);}
  }
  report("plain read of the same weights",4,0,NONE,bytes,0);
  size_t n=64<<20; unsigned long*b=aligned_alloc(64,n*8); for(size_t i=0;i<n;i++)b[i]=i;
  double best=1e9; unsigned long s=0; for(int r=0;r<3;r++){double t0=now();
   #pragma omp parallel for reduction(+:s) num_threads(2)
   for(size_t i=0;i<n;i++)s+=b[i]; double t=now()-t0;if(t<best)best=t;}
  printf("read bandwidth (512 MB) %.1f GB/s (%lu)\n",n*8/best/1e9,s%2);
}
